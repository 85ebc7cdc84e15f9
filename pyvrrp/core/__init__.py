"""pyvrrp/core"""
