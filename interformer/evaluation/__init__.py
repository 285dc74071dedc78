"""Click-test evaluation: the robot user (re-exported from
:mod:`interformer.interaction`), NoC/NoF/mIoU metrics, the per-instance and
per-dataset loops (sharded over processes) and the reports (RITM table,
JSON, mIoU plot)."""
from ..interaction import Click, ClickProtocol, get_protocol, next_click
from .click_test import (
                         ClickTestResult,
                         InstanceResult,
                         evaluate_instance,
                         instance_rng,
                         run_click_test,
)
from .distributed import (
                         all_gather_objects,
                         finalize_distributed,
                         get_dist_info,
                         init_distributed,
                         shard_indices,
)
from .metrics import (
                         iou,
                         miou_curve,
                         noc,
                         nof_never_reached,
                         nof_ritm,
                         summarize,
)
from .report import (
                         plot_miou_curves,
                         result_to_dict,
                         results_table,
                         save_json,
                         save_report,
                         timing_table,
)
from .runner import (
                         build_click_test_dataset,
                         build_predictor,
                         resolve_config_and_checkpoint,
)
from .tta import TTAPredictor, parse_tta, tta_overrides, with_tta

__all__ = [
    'Click', 'ClickProtocol', 'get_protocol', 'next_click', 'iou', 'noc',
    'nof_ritm', 'nof_never_reached', 'miou_curve', 'summarize',
    'InstanceResult', 'ClickTestResult', 'evaluate_instance',
    'run_click_test', 'instance_rng', 'init_distributed',
    'finalize_distributed', 'get_dist_info', 'shard_indices',
    'all_gather_objects', 'results_table', 'timing_table',
    'result_to_dict', 'save_json', 'save_report', 'plot_miou_curves',
    'build_click_test_dataset', 'build_predictor',
    'resolve_config_and_checkpoint', 'TTAPredictor', 'parse_tta',
    'tta_overrides', 'with_tta'
]
