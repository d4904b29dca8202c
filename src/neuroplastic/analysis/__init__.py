"""Aggregation, statistics, figures and tables for the workflow (`neuroplastic aggregate|figures|estimate`)."""
