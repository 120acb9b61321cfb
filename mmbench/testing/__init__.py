"""The conformance kit for plugin authors (like scikit-learn's ``check_estimator``).

``check_encoder``, ``check_fusion`` and ``check_dataset`` run every check on one component and
raise :class:`ConformanceError` listing each failure; ``parametrize_with_checks`` turns them into
one pytest case per check.
"""

from mmbench.testing.kit import (
    ConformanceError,
    check_batch_of_one,
    check_dataset,
    check_declaration,
    check_encoder,
    check_fusion,
    check_gradients,
    check_input_order,
    check_load,
    check_output_shapes,
    check_pooled_only,
    check_prepare,
    check_seeded_determinism,
    check_sequence_input,
    check_space_points_build,
    check_state_dict_round_trip,
    check_task_types,
    check_unknown_option_rejected,
    example_batch,
    example_info,
    example_rows,
    fusion_inputs,
    parametrize_with_checks,
    space_points,
    yield_checks,
)

__all__ = ['ConformanceError', 'check_batch_of_one', 'check_dataset', 'check_declaration', 'check_encoder', 'check_fusion', 'check_gradients', 'check_input_order', 'check_load', 'check_output_shapes', 'check_pooled_only', 'check_prepare', 'check_seeded_determinism', 'check_sequence_input', 'check_space_points_build', 'check_state_dict_round_trip', 'check_task_types', 'check_unknown_option_rejected', 'example_batch', 'example_info', 'example_rows', 'fusion_inputs', 'parametrize_with_checks', 'space_points', 'yield_checks']
