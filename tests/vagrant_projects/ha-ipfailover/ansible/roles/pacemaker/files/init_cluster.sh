#!/bin/sh
# Creates a two-node cluster with a virtual IP on the private network (eth1).
set -e
# the packages leave a one-node corosync.conf (node1 on 127.0.0.1): pcs would
# send the new tokens to that cluster instead of keeping them
pcs cluster destroy
pcs host auth nodo1 nodo2 -u hacluster -p hacluster
pcs cluster setup lab_cluster nodo1 nodo2 --start --enable --force --wait=120
pcs property set stonith-enabled=false
pcs resource create VirtualIP ocf:heartbeat:IPaddr2 ip=10.1.1.100 cidr_netmask=24 nic=eth1 op monitor interval=10s
touch /root/cluster-created
