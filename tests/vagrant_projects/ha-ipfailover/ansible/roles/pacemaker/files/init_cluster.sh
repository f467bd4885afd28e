#!/bin/sh
# Creates a two-node cluster with a virtual IP on the private network (eth1).
set -e
pcs host auth nodo1 nodo2 -u hacluster -p hacluster
pcs cluster setup lab_cluster nodo1 nodo2 --start --enable --force --wait=120
pcs property set stonith-enabled=false
pcs resource create VirtualIP ocf:heartbeat:IPaddr2 ip=10.1.1.100 cidr_netmask=24 nic=eth1 op monitor interval=10s
touch /root/cluster-created
