"""Readers for real dataset layouts: text corpora for pretraining (text.py, tokenizers.py), and the
video datasets. Import the module you need; this package imports nothing heavy by itself.
"""
