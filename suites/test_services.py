"""Pod-to-Service and external-to-Service: kube-proxy's (or its replacement's) Service semantics."""
from netconform.checks import (BACKENDS, OUTSIDE_CLIENT, SECOND_NODE, BackendCycle, api_server_to_pods, check, hostports, nodeports,
                               pods_to_api_server, pods_to_each_port, pods_to_service, shared_hostports)
from netconform.probing.service_verdicts import (backend_followed, client_ip_kept, client_pod_ip_seen, each_port_reaches_its_target,
                                                 held_then_released, only_local_backends, reached_through_api,
                                                 every_backend_reached,
                                                 lands_on_itself, reached_a_backend,
                                                 real_client_ip_on_local_backend, refused_promptly,
                                                 tls_handshake_completed)
from netconform.probing.dns_verdicts import answered_as_expected
from netconform.service_changes import (AFFINITY_CHANGES, AFFINITY_EXPIRY_CHANGES, AFFINITY_RESTORE, CONTROL_SERVICE,
                                        PROTOCOL_CHANGES, PROTOCOL_RESTORE, TYPE_CHANGES, TYPE_RESTORE,
                                        affinity_rounds, affinity_timeout_rounds, itp_local_rounds,
                                        protocol_rounds, released, type_change_rounds)
from netconform.probing.runner import VIA_API
from netconform.services import CYCLED_ROLE, CYCLED_SERVICE, minimum_connections, shared_address, shared_source
from netconform.topology import HOST, OUTSIDE, POD

TCP_UDP = ("tcp", "udp")


def enough_to_see_every_backend(topology, service):
    return minimum_connections(len(topology.services[service.serves].backends))


test_svc_clusterip = check("SVC-CLUSTERIP", pods_to_service("web"), TCP_UDP, every_backend_reached,
                           repeat=enough_to_see_every_backend)

test_svc_source_ip = check("SVC-SOURCE-IP", pods_to_service("web"), TCP_UDP, client_ip_kept,
                           repeat=enough_to_see_every_backend, needs=(SECOND_NODE,),
                           judges_connections_of=test_svc_clusterip.netconform_check)

test_svc_nodeport = check("SVC-NODEPORT", nodeports("web"), TCP_UDP, reached_a_backend)

test_pod_nodeport = check("POD-NODEPORT", nodeports("web", sources=(POD,)), TCP_UDP, reached_a_backend)

test_hostnet_svc = check("HOSTNET-SVC", pods_to_service("web", sources=(HOST,)), TCP_UDP,
                         reached_a_backend)

test_svc_hairpin = check("SVC-HAIRPIN", pods_to_service("web", clients=BACKENDS), TCP_UDP,
                         lands_on_itself, repeat=enough_to_see_every_backend)

test_svc_affinity = check("SVC-AFFINITY", pods_to_service("web-affinity"), TCP_UDP, answered_as_expected,
                          rounds=affinity_rounds, changes=AFFINITY_CHANGES, restore=AFFINITY_RESTORE,
                          stop_at_failure=True)

test_svc_no_endpoints = check("SVC-NO-ENDPOINTS", pods_to_service("empty"), TCP_UDP,
                              refused_promptly)

test_svc_etp_local = check("SVC-ETP-LOCAL", nodeports("web-local", sources=(OUTSIDE,)), TCP_UDP,
                           real_client_ip_on_local_backend, needs=(OUTSIDE_CLIENT,))

test_hostport = check("HOSTPORT", hostports(), TCP_UDP, reached_a_backend)

# three pods on one node share a hostPort: loopback over TCP (127.0.0.1, or ::1 on an IPv6 cluster;
# connected to from the node's own address, as upstream does), the node's IP over TCP and over UDP
# (hostIPs of the primary family, as upstream's test: a hostPort bound to a hostIP binds that alone)
test_hostport_shared_tcp = check("HOSTPORT", shared_hostports("tcp"), ("tcp",), reached_a_backend,
                                 address=shared_address, bind=shared_source, primary_family_only=True)
test_hostport_shared_udp = check("HOSTPORT", shared_hostports("udp"), ("udp",), reached_a_backend,
                                 address=shared_address, primary_family_only=True)

test_svc_multiport = check("SVC-MULTIPORT", pods_to_each_port("multiport"), TCP_UDP,
                           each_port_reaches_its_target)

test_svc_type_change = check("SVC-TYPE-CHANGE", pods_to_service("retyped"), TCP_UDP, answered_as_expected,
                             rounds=type_change_rounds, changes=TYPE_CHANGES, restore=TYPE_RESTORE,
                             stop_at_failure=True)

test_svc_endpointslice_manual = check("SVC-ENDPOINTSLICE-MANUAL", pods_to_each_port("manual"), TCP_UDP,
                                      each_port_reaches_its_target)

test_svc_port_protocols = check("SVC-PORT-PROTOCOLS", pods_to_service("protocols"), TCP_UDP, answered_as_expected,
                                rounds=protocol_rounds, changes=PROTOCOL_CHANGES, restore=PROTOCOL_RESTORE,
                                stop_at_failure=True)

# the kubernetes Service has a ClusterIP of the cluster's primary family only
test_pod_apiserver = check("POD-APISERVER", pods_to_api_server, ("tls",), tls_handshake_completed,
                           primary_family_only=True)

test_svc_hostnet_endpoints = check("SVC-HOSTNET-ENDPOINTS", pods_to_service("hostnet"), TCP_UDP,
                                   client_pod_ip_seen, repeat=enough_to_see_every_backend)

# its positive control connects to web: from a pod that is not one of web's backends (no hairpin)
test_svc_itp_local = check("SVC-ITP-LOCAL", pods_to_service("itp-local", apart_from=(CONTROL_SERVICE,)), TCP_UDP,
                           only_local_backends,
                           rounds=itp_local_rounds)

test_apiserver_pod = check("APISERVER-POD", api_server_to_pods, (VIA_API,), reached_through_api)

test_svc_affinity_timeout = check("SVC-AFFINITY-TIMEOUT", pods_to_service("affinity-timeout"), TCP_UDP,
                                  held_then_released, rounds=affinity_timeout_rounds,
                                  changes=AFFINITY_EXPIRY_CHANGES, until=released,
                                  needs=(SECOND_NODE,))  # a backend per node: released needs two

# a backend pod created, then a second created and the first deleted, while every pod sends UDP to
# the Service from one fixed source port (probing/cycle.py): stale conntrack entries keep the flow
test_svc_udp_backend_change = check("SVC-UDP-BACKEND-CHANGE", pods_to_service(CYCLED_SERVICE), ("udp",),
                                    backend_followed, cycle=BackendCycle(CYCLED_SERVICE, CYCLED_ROLE))
