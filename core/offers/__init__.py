"""Offers shared by every worker: which ones a provision has claimed."""
