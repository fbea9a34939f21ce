"""The README stays a user guide that is true: its links lead somewhere, its commands name real
flags, and it stays short enough to read."""

import re

import pytest
from conftest import REPOSITORY

import infer
import train

README = (REPOSITORY / "README.md").read_text(encoding="utf-8")


def slug(heading):
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_to_a_heading_or_file_exists():
    anchors = {slug(heading) for heading in re.findall(r"^#+ (.+)$", README, re.MULTILINE)}
    for target in re.findall(r"\]\(([^)]+)\)", README):
        if target.startswith("#"):
            assert target[1:] in anchors, f"no heading for {target}"
        elif not target.startswith("http"):
            assert (REPOSITORY / target).exists(), f"{target} does not exist"


@pytest.mark.parametrize("script, parser", [("train.py", train.get_args_parser), ("infer.py", infer.get_args_parser)])
def test_every_flag_in_a_readme_command_exists(script, parser):
    known = set(parser()._option_string_actions)
    for command in re.findall(rf"python {script}([^\n`|]*)", README):
        for flag in re.findall(r"(--[a-z][a-z-]*)", command):
            assert flag in known, f"python {script} ...{flag} in the README is not a flag of {script}"


def test_the_first_screen_has_the_two_quick_start_commands_and_the_recipes_follow():
    first_screen = README[:README.index("## Recipes")]
    assert "pip install -r requirements.txt && python train.py --demo" in first_screen
    assert "pip install -r requirements-dev.txt && python -m pytest" in first_screen
    recipes = README[README.index("## Recipes"):README.index("## Your data")]
    for task in ("Train on my folder", "Tag a folder", "Write only some tags", "Continue an interrupted run",
                 "Use my GPU or Apple silicon"):
        assert f"**{task}.**" in recipes


def test_the_readme_stays_short_and_about_the_project():
    assert len(README.split()) < 4500
    assert not re.search(r"\b(issue|hidden benchmark|session)s?\b", README, re.IGNORECASE)


def test_the_layout_section_names_every_module_of_common():
    layout = README[README.index("## Development"):].split("```")[1]
    modules = {path.stem for path in (REPOSITORY / "common").glob("*.py")} - {"__init__"}
    assert modules - set(re.findall(r"[a-z_]+", layout)) == set()
