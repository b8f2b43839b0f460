"""`python -m trainer.hub push DIR --hub-model-id org/name`: push (or re-push) a finished checkpoint."""

from trainer.errors import exit_on_user_error
from trainer.hub.publish import main

exit_on_user_error(main)
