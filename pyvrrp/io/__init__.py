"""pyvrrp/io"""
