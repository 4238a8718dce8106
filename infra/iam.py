"""IAM documents more than one component uses."""

from __future__ import annotations

import json

# Trust policy for roles that EC2 instances assume (EKS nodes, the Jenkins server).
EC2_ASSUME_ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
