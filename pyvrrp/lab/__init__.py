"""pyvrrp/lab"""
