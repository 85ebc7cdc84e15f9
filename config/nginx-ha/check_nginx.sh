#!/bin/sh
# The seed's check: is nginx running? (needs psmisc for killall)
/usr/bin/killall -0 nginx
