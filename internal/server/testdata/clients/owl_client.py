"""The boto3 Lambda client the test scripts share.

client(endpoint, key_id, secret) talks to an Owl server with the test's
key pair, without retries.
"""

import boto3
import botocore.config


def client(endpoint, key_id, secret):
    return boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        # A retried invoke would run twice: the test must see every first answer.
        config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
