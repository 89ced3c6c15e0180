"""Evaluation: registered methods, measurement points, the resumable sweep with its floors, the
multi-user share sweep, metrics with intervals, and reports (JSON, CSV, PNG)."""

from semcom_cli.evaluation.methods import METHODS, Method, MethodContext, Received, register_method
from semcom_cli.evaluation.points import Point, Settings, evaluate_point, plan_points, sample_items, task_metrics
from semcom_cli.evaluation.share import SharePoint, ShareSweep, evaluate_share_point, share_sweep
from semcom_cli.evaluation.sweep import SweepResult, load_models, partial_path, run_sweep, sweep_settings, write_report

__all__ = ["METHODS", "Method", "MethodContext", "Received", "register_method", "Point", "Settings",
           "evaluate_point", "plan_points", "sample_items", "task_metrics", "ShareSweep", "SharePoint",
           "evaluate_share_point", "share_sweep", "SweepResult", "load_models", "partial_path", "run_sweep",
           "sweep_settings",
           "write_report"]
