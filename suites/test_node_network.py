"""Node agents reach the pods on their node; hostNetwork pods reach every pod without NAT."""
from netconform.checks import check, host_to_pods
from netconform.probing.verdicts import reached, reached_from_node_address

test_node_pod = check("NODE-POD", host_to_pods(same_node_only=True), ("tcp", "udp", "icmp"),
                      reached)

test_hostnet_pod = check("HOSTNET-POD", host_to_pods(same_node_only=False), ("tcp", "udp", "icmp"),
                         reached_from_node_address)
