"""drcn.train"""
