from memberships import self_service


def test_world_member_sees_home_organization_first(world):
    # Given the standard world, When ann lists her organizations
    with world.uow() as uow:
        entries = self_service.list_organizations(uow, world.principal("ann"))
    # Then the home organization comes first and cannot be left
    assert entries[0].organization.domain == "home.example"
    assert entries[0].can_leave is False
    assert [e.organization.domain for e in entries[1:]] == [
        "bare.example",
        "closed.example",
        "open.example",
    ]
