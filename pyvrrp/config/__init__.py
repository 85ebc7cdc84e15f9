"""pyvrrp/config"""
