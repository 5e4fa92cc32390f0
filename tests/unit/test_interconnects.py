"""The ways between lab nodes (backends/lab/interconnects/): one module each, found by the package,
named by the profiles, each saying which IP families it carries."""
from netconform.backends.lab.interconnects import INTERCONNECTS
from netconform.profiles import PROFILES


def test_every_lab_profile_names_a_way_the_package_has():
    for profile in (p for p in PROFILES.values() if p.backend == "lab"):
        assert profile.overlay in INTERCONNECTS, profile.name
    assert set(INTERCONNECTS) == {"routes", "vxlan"}


def test_static_routes_reach_every_other_nodes_pod_range_in_each_family_the_cluster_has():
    routes = INTERCONNECTS["routes"]
    four, fdb = routes.commands(1, [2, 3], ("ipv4",))
    assert four == ["route add 10.244.2.0/24 via 172.18.0.3", "route add 10.244.3.0/24 via 172.18.0.4"] and fdb == []
    both, _ = routes.commands(1, [2], ("ipv4", "ipv6"))
    assert both == ["route add 10.244.2.0/24 via 172.18.0.3", "route add fd00:10:244:2::/64 via fd00:18::3"]
    assert "ipv6" in routes.families and INTERCONNECTS["vxlan"].families == ("ipv4",)


def test_vxlan_gives_each_other_node_a_route_a_neighbour_and_a_forwarding_entry():
    commands, fdb = INTERCONNECTS["vxlan"].commands(1, [2], ("ipv4",))
    assert "route add 10.244.2.0/24 via 10.244.2.0 dev vxlan.nc onlink" in commands
    assert fdb == ["fdb append 02:6e:63:00:00:02 dev vxlan.nc dst 172.18.0.3"]
