"""Full-size packets across nodes: a smaller path MTU must be announced, never a black hole."""
from netconform.checks import SECOND_NODE, check, pod_pairs
from netconform.probing.verdicts import reached_at_full_size

test_mtu = check("MTU", pod_pairs(same_node=False), ("icmp",), reached_at_full_size, full_size=True,
                 needs=(SECOND_NODE,))
