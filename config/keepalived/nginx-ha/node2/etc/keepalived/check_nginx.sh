#!/bin/bash
/usr/bin/killall -0 nginx #修改处:killall需安装
