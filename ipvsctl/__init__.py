"""ipvsctl: the IPVS manager (lower layer; never imports pyvrrp)."""
