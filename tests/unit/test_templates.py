"""Templates as data: the built-ins, user templates from TOML, clear errors."""

import pytest

from devlooper.errors import ConfigError
from devlooper.synthesis import template_toml
from devlooper.templates import BUILTIN, get_template, load_template

NODE_TOML = '''
name = "node-test"
description = "Node with node --test"
runtime = "node"
install_command = "npm install --prefix \\"$DEVLOOPER_ENV\\" {packages}"
test_command = "node --test"
manifest = "package.json"
'''


def test_builtins_are_valid_and_listed():
    assert "python" in BUILTIN
    for template in BUILTIN.values():
        assert "{packages}" in template.install_command and template.description


def test_user_template_from_a_file(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(NODE_TOML)
    template = get_template(str(path))
    assert template.name == "node-test" and template.runtime == "node" and template.workdir == "/workspace"


def test_folder_template_takes_its_files_and_name(tmp_path):
    folder = tmp_path / "mytool"
    (folder / "files" / "conf").mkdir(parents=True)
    (folder / "files" / "conf" / "settings.ini").write_text("[x]\n")
    (folder / "template.toml").write_text(NODE_TOML.replace('name = "node-test"\n', ""))
    template = load_template(folder)
    assert template.name == "mytool"
    assert template.setup_files == {"conf/settings.ini": "[x]\n"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = ", "not valid TOML"),
        (NODE_TOML + 'colour = "red"\n', "colour: Extra inputs are not permitted"),
        (NODE_TOML.replace("{packages}", ""), "install_command: Value error, must contain {packages}"),
        (NODE_TOML.replace('test_command = "node --test"\n', ""), "test_command: Field required"),
        (NODE_TOML + '[setup_files]\n"../evil" = "x"\n', "escapes the workspace"),
    ],
)
def test_invalid_templates_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        get_template(str(path))
    assert str(path) in str(err.value) and message in str(err.value)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ConfigError, match=r"unknown template 'cobol'; known: .*python.*path to a template"):
        get_template("cobol")
    with pytest.raises(ConfigError, match="template file not found"):
        get_template("./missing.toml")


def test_a_saved_template_loads_back_equal(tmp_path):
    original = BUILTIN["python"]
    path = tmp_path / "copy.toml"
    path.write_text(template_toml(original))
    assert load_template(path) == original
