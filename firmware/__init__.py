"""neurram.firmware"""
