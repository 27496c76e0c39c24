"""Entry point ``process`` in LocalStack's ``localstack.lambda.runtime_executor`` plugin namespace."""

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin


class ProcessRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "process"

    def load(self, *args, **kwargs):
        from localstack_process_executor.executor import ProcessRuntimeExecutor
        from localstack_process_executor import patches

        patches.keep_sqs_bodies_byte_identical()
        patches.pass_multipart_bodies_without_a_boundary()
        patches.skip_undefined_members_in_cbor_responses()
        patches.keep_event_source_mapping_state_current()
        patches.stop_sqs_polling_when_disabled()

        return ProcessRuntimeExecutor
