"""pyvrrp: a pure-Python VRRPv2 speaker and IPVS manager, a drop-in for keepalived in labs."""
