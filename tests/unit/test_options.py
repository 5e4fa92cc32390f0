"""Option parsing: ranges and the two spellings of an option with a value."""
from _pytest.config.argparsing import Parser

from netconform import cmdline, pytest_plugin


def plugin_parser() -> Parser:
    parser = Parser(_ispytest=True)  # the plugin's own options, as pytest would add them
    pytest_plugin.pytest_addoption(parser)
    return parser


def test_only_options_that_take_a_value_are_joined_to_the_next_word():
    options = cmdline.value_options(plugin_parser(), pytest_plugin.OPTION_GROUPS)
    assert {"--report-dir", "--kubeconfig", "--lab-nodes", "--probe-timeout"} <= options
    assert not {"--keep", "--cleanup-only"} & options  # flags: the next word is not theirs
    joined = cmdline.join_option_values(["--report-dir", "x", "--keep", "--ready-timeout=5", "--",
                                         "--lab-nodes", "3"], options)
    assert joined == ["--report-dir=x", "--keep", "--ready-timeout=5", "--", "--lab-nodes", "3"]
