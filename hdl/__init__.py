"""neurram.hdl"""
