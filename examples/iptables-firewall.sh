#!/bin/sh
# A small stateful iptables/ip6tables firewall that logs what ipta reads: every logged packet
# carries a prefix "IPT: <ACTION> " (the trailing space separates it from the kernel's fields).
#
#   LOGDROP    log with "IPT: DROP " and drop
#   LOGACCEPT  log with "IPT: ACCEPT " and accept (new inbound connections to open services)
#   LOGINVALID log with "IPT: INVALID " and drop (conntrack state INVALID)
#
# Logging is rate-limited so a flood cannot fill the disk. Adapt OPEN_TCP and the interface
# rules, then run as root. Undo with: iptables -F; iptables -X; iptables -P INPUT ACCEPT
# (and the same with ip6tables).
set -eu

OPEN_TCP="22 80 443"
LIMIT="-m limit --limit 30/min --limit-burst 60"

for ipt in iptables ip6tables; do
    $ipt -F
    $ipt -X
    $ipt -P INPUT DROP
    $ipt -P FORWARD DROP
    $ipt -P OUTPUT ACCEPT

    $ipt -N LOGDROP
    $ipt -A LOGDROP $LIMIT -j LOG --log-prefix "IPT: DROP " --log-level 4
    $ipt -A LOGDROP -j DROP

    $ipt -N LOGACCEPT
    $ipt -A LOGACCEPT $LIMIT -j LOG --log-prefix "IPT: ACCEPT " --log-level 6
    $ipt -A LOGACCEPT -j ACCEPT

    $ipt -N LOGINVALID
    $ipt -A LOGINVALID $LIMIT -j LOG --log-prefix "IPT: INVALID " --log-level 4
    $ipt -A LOGINVALID -j DROP

    $ipt -A INPUT -i lo -j ACCEPT
    $ipt -A INPUT -m conntrack --ctstate INVALID -j LOGINVALID
    $ipt -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    for port in $OPEN_TCP; do
        $ipt -A INPUT -p tcp --dport "$port" -m conntrack --ctstate NEW -j LOGACCEPT
    done
    $ipt -A INPUT -j LOGDROP
    $ipt -A FORWARD -j LOGDROP
done

# ICMP: IPv4 echo, and what IPv6 cannot work without (neighbour discovery, PMTU).
iptables -I INPUT 4 -p icmp --icmp-type echo-request -j LOGACCEPT
ip6tables -I INPUT 4 -p ipv6-icmp -j ACCEPT
