"""The repository itself is a valid Hugging Face Space, and its front door (README) stays short and about the
software."""

from __future__ import annotations

import re
import subprocess

from tests.helpers.cli import REPO

# Words that speak about how or by whom the repo was built, or cite documents a reader cannot open.
# Written so that this line does not match itself (\s for the spaces, [r] for the last letter).
NOT_ABOUT_THE_SOFTWARE = r"GUIDE( §|\.md)|\b[Ll]ent\b|device\stool|[Ee]ngineers?\s(shared|measured)|[Tt]he\sissue|" \
                         r"this\ssession|can_start_anothe[r]"


def pins() -> dict[str, str]:
    """requirements.txt as name → exact version."""
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return dict(line.split("#")[0].strip().split("==") for line in lines if "==" in line)


def test_readme_front_matter_is_a_space_config_at_our_pins():
    from huggingface_hub import SpaceCard

    from trainer.hub.space_repo import PYTHON_VERSION

    card = SpaceCard.load(REPO / "README.md")
    data = card.data.to_dict()
    assert data["sdk"] == "gradio" and data["sdk_version"] == pins()["gradio"]
    assert data["app_file"] == "app.py" and (REPO / data["app_file"]).is_file()
    assert data["python_version"] == PYTHON_VERSION == "3.11"
    assert 0 < len(data["short_description"]) <= 60  # the Hub's limit
    assert card.text.lstrip().startswith("# timm-space")


def test_root_packages_txt_matches_what_create_space_ships():
    from trainer.hub.space_repo import space_files

    shipped = space_files("org/demo", "org/model", "0" * 40)["packages.txt"].decode().split()
    assert (REPO / "packages.txt").read_text().split() == shipped == ["ffmpeg"]


def test_readme_is_the_short_front_door():
    assert len((REPO / "README.md").read_bytes()) <= 12 * 1024
    for link in re.findall(r"\]\((docs/[^)#]+)", (REPO / "README.md").read_text()):
        assert (REPO / link).is_file(), link


def test_repo_speaks_about_the_software_only():
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    hits = []
    for name in files:
        path = REPO / name
        if not path.is_file() or path.suffix in (".png", ".safetensors", ".wav"):
            continue
        for n, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
            if re.search(NOT_ABOUT_THE_SOFTWARE, line):
                hits.append(f"{name}:{n}: {line.strip()[:100]}")
    assert not hits, hits
