"""Tests of gvc.training and train.py."""
