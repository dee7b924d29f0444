"""Many ``jb`` processes on one Redis and RabbitMQ form one gateway.

- :mod:`~junebug.cluster.members`: each process's identity and heartbeat;
- :mod:`~junebug.cluster.leases`: a channel's ownership lease with its
  fencing token;
- :mod:`~junebug.cluster.placement`: which process should run which channel
  (pure functions);
- :mod:`~junebug.cluster.reconciler`: the loop that makes this process do
  its share;
- :mod:`~junebug.cluster.control`: requests between processes over RabbitMQ.

``docs/cluster.rst`` has the design and why it is safe.
"""
