"""What a request asks of Warden: submit a packet, decide an approval, read the log; raising
domain errors (`gateway.pipeline.errors`), never HTTP ones."""
