"""Encoders of prediction results into what radiology systems consume."""
