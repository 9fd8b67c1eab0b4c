import pytest

from conformance.framework.capabilities import parse_feature_metric
from conformance.infra.versions import Version, before, between, since


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("v1.36.3", Version(1, 36, 3)),
        ("1.36", Version(1, 36, 0)),
        ("cri-o://1.36.3", Version(1, 36, 3)),
        ("containerd://2.1.9", Version(2, 1, 9)),
        ("v1.37.0-rc.1+abc", Version(1, 37, 0)),
    ],
)
def test_parse(text, parsed):
    assert Version.parse(text) == parsed


def test_unparseable_version_names_the_input():
    with pytest.raises(ValueError, match="garbage"):
        Version.parse("garbage")


def test_ranges_are_half_open():
    assert Version(1, 33) in since("1.33")
    assert Version(1, 32, 99) not in since("1.33")
    assert Version(1, 33) not in before("1.33")
    assert Version(1, 32, 13) in between("1.31", "1.33")


def test_feature_metric_parsing():
    text = '# HELP x\nkubernetes_feature_enabled{name="ImageVolume",stage=""} 1\n'
    assert parse_feature_metric(text) == (True, "")
    assert parse_feature_metric('kubernetes_feature_enabled{name="ImageVolume",stage="BETA"} 0') == (False, "BETA")
    assert parse_feature_metric("nothing here") == (None, "")
