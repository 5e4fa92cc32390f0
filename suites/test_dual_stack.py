"""A cluster of both IP families gives every pod and node one address per family, on its own
interface, and a pod's is the source its peers see in each (DUAL-STACK, one item per family)."""
from netconform.checks import BOTH_FAMILIES, check, each_pod_and_node
from netconform.probing.verdicts import PEERS, own_address_in_each_family

test_dual_stack = check("DUAL-STACK", each_pod_and_node, ("self",), own_address_in_each_family,
                        needs=(BOTH_FAMILIES,), evidence=((PEERS, "tcp"),))
