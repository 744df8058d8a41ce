"""drcn.runtime"""
