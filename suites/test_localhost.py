"""The containers of one pod share one network namespace: localhost, IP and MAC."""
from netconform.checks import check, containers_of_one_pod, loopback
from netconform.probing.verdicts import reached_on_loopback, same_network_namespace

test_localhost = check("LOCALHOST", containers_of_one_pod(both_ways=True), ("tcp", "udp"),
                       reached_on_loopback, address=loopback)

test_localhost_shared_namespace = check("LOCALHOST", containers_of_one_pod(both_ways=False),
                                        ("self",), same_network_namespace)
