"""Tracked objects: vrrp_script runs, track_file and track_process polls, and their wiring."""
