"""Tests of gvc.eval and evaluate.py."""
