import pytest

from camera_service.auth.roles import LEVEL_NAMES, PERMISSIONS, ROLE_LEVELS, ROLE_NAMES, role_level


def test_levels_are_ordered_viewer_operator_admin():
    assert ROLE_LEVELS == {"viewer": 1, "operator": 2, "admin": 3}
    assert role_level("viewer") < role_level("operator") < role_level("admin")
    assert ROLE_NAMES == ("viewer", "operator", "admin")


def test_permissions_match_protocol():
    assert PERMISSIONS == {
        "viewer": ("view",),
        "operator": ("view", "control"),
        "admin": ("view", "control", "admin"),
    }


def test_each_role_has_every_permission_of_the_lower_ones():
    ordered = sorted(ROLE_LEVELS, key=ROLE_LEVELS.get)
    for lower, higher in zip(ordered, ordered[1:]):
        assert set(PERMISSIONS[lower]) < set(PERMISSIONS[higher])


def test_level_names_invert_levels():
    assert LEVEL_NAMES == {1: "viewer", 2: "operator", 3: "admin"}
    for name, level in ROLE_LEVELS.items():
        assert LEVEL_NAMES[level] == name


@pytest.mark.parametrize("name", ["Admin", "root", "", " viewer", None, ["admin"], 3])
def test_unknown_role_raises(name):
    with pytest.raises(ValueError, match="unknown role"):
        role_level(name)
