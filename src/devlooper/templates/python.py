"""The Python template: a venv with pytest."""

from .base import EnvTemplate

PYTHON = EnvTemplate(
    name="python",
    description="Python 3 library or tool, tested with pytest.",
    runtime="python",
    image="python:3.11-slim",
    base_packages=["pytest"],
    install_command="python -m pip install --disable-pip-version-check --no-input {packages}",
    test_command="python -m pytest -q -rfE -p no:cacheprovider",
    manifest="requirements.txt",
    results="none",
    setup_files={
        "pytest.ini": "[pytest]\ntestpaths = tests\npythonpath = .\n",
    },
    guidance=(
        "Write importable modules at the project root or in a package directory, and put "
        "pytest tests under tests/ (files named test_*.py). pytest.ini already sets "
        "pythonpath = . so tests import the project's modules directly. Use only the "
        "standard library unless a package is really needed; list every third-party "
        "package you import under packages."
    ),
)
