"""Pods reach every pod, on their node and across nodes, by pod IP and without NAT."""
from netconform.checks import SECOND_NODE, check, each_pod, pod_pairs
from netconform.probing.verdicts import PEERS, pod_ip_is_own_and_seen, reached_from_pod_ip

test_pod_pod_same = check("POD-POD-SAME", pod_pairs(same_node=True), ("tcp", "udp", "icmp"),
                          reached_from_pod_ip)

test_pod_pod_cross = check("POD-POD-CROSS", pod_pairs(same_node=False), ("tcp", "udp", "icmp"),
                           reached_from_pod_ip, needs=(SECOND_NODE,))

test_pod_ip_self = check("POD-IP-SELF", each_pod, ("self",), pod_ip_is_own_and_seen,
                         evidence=((PEERS, "tcp"),))
