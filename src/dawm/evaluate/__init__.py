"""Evaluation stage: accuracy metrics, bias and clinical-association statistics, figures, report."""
