"""neurram.models"""
