"""Packets as large as the path allows, and larger: a smaller path MTU must be announced, never a
black hole (MTU), and a datagram larger than one packet is fragmented and arrives whole (UDP-LARGE)."""
from netconform.checks import SECOND_NODE, check, pod_pairs
from netconform.probing.verdicts import arrived_whole, reached_at_full_size

LARGE_DATAGRAM = 2000  # bytes of UDP payload: more than a 1500-byte packet carries

test_mtu = check("MTU", pod_pairs(same_node=False), ("icmp",), reached_at_full_size, full_size=True,
                 needs=(SECOND_NODE,))

test_udp_large = check("UDP-LARGE", pod_pairs(same_node=False), ("udp",), arrived_whole,
                       payload=LARGE_DATAGRAM, needs=(SECOND_NODE,))
