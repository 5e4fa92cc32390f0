"""Cluster DNS: Service, headless, SRV, PTR, pod and ExternalName records, asked by pods (and by
hostNetwork pods with dnsPolicy ClusterFirstWithHostNet) through their own resolv.conf, over UDP
and TCP."""
from netconform.checks import ALL, check, pods_to_service
from netconform.dns import (EXTERNAL_CHANGES, EXTERNAL_RESTORE, external_rounds, headless_a, next_pod,
                            pod_a, pod_hostname, pods_to_named, ptr, service_a, srv)
from netconform.probing.dns_verdicts import answered_as_expected
from netconform.topology import HOST

UDP_TCP = ("udp", "tcp")

test_dns_svc = check("DNS-SVC", pods_to_service("web"), UDP_TCP, answered_as_expected, queries=service_a)

test_dns_headless = check("DNS-HEADLESS", pods_to_service("web-headless", clients=ALL), UDP_TCP, answered_as_expected,
                          queries=headless_a)

test_dns_srv = check("DNS-SRV", lambda t: pods_to_service("web", clients=ALL)(t) + pods_to_service("web-headless", clients=ALL)(t), UDP_TCP,
                     answered_as_expected, queries=srv)

test_dns_ptr = check("DNS-PTR", pods_to_service("web", clients=ALL), UDP_TCP, answered_as_expected, queries=ptr)

test_dns_pod_a = check("DNS-POD-A", next_pod, UDP_TCP, answered_as_expected, queries=pod_a)

test_dns_pod_hostname = check("DNS-POD-HOSTNAME", pods_to_named, UDP_TCP, answered_as_expected,
                              queries=pod_hostname)

test_dns_externalname = check("DNS-EXTERNALNAME", pods_to_service("external"), UDP_TCP, answered_as_expected,
                              stop_at_failure=True,
                              rounds=external_rounds, changes=EXTERNAL_CHANGES, restore=EXTERNAL_RESTORE)

test_dns_hostnet = check("DNS-HOSTNET", pods_to_service("web", sources=(HOST,)), UDP_TCP, answered_as_expected,
                         queries=service_a)
