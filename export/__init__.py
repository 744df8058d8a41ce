"""drcn.export"""
