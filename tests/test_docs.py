"""The README's generated reference sections match the code that defines them."""

from pathlib import Path

from accelsim.docs import render, sections


def test_readme_reference_sections_are_current():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert render(readme) == readme, "run `python -m accelsim.docs` to refresh README.md"
    for name in sections():
        assert f"<!-- BEGIN {name} -->" in readme


def test_readme_quick_start_is_two_commands_matching_ci():
    root = Path(__file__).resolve().parent.parent
    text = (root / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[1] in (root / ".ci" / "run").read_text()
