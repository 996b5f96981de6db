"""Container networking for the node agent: Docker's bridge driver, without a daemon.

    api.py       the engine's contract: attach / detach / reclaim (+ connect, disconnect, purge)
    networks.py  networks as records: the default "bridge" (made on first use and kept while
                 idle, like docker0; only api.purge removes it) and user-defined ones, each with
                 its own Linux bridge
    ipam.py      subnets that overlap no host route or other network; addresses never handed
                 out twice; docker-style MACs
    links.py     kernel side through iproute2 batches: netns files under /run/dockyard/netns, bridges,
                 veth pairs (host end on the bridge, peer made as eth0 inside the namespace)
    firewall.py  one nftables table per agent root, rebuilt atomically from the records:
                 DNAT for published ports (prerouting + output, so 127.0.0.1 works),
                 masquerade, isolation between bridges
    ports.py     -p / -P parsing, host port choice, docker's Ports shapes
    hosts.py     name resolution through /etc/hosts files kept current for peers
    state.py     the records on disk and the lock that serialises every change

The modes "none" and "host" need no attach(): the engine handles them (node/engine/netsetup.py).
"""
