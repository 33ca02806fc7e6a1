"""Tests of gvc.data."""
