"""Presentation: tables, plots and reports of what the model and the simulator produced."""
