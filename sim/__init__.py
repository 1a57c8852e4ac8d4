"""neurram.sim"""
