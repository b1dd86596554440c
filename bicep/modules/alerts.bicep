// The Azure Monitor workbook from dashboards/ and alert rules at the thresholds dashboards/README.md
// names (its "Alert thresholds" table; tests/unit/test_bicep.py keeps the two in step).
param location string
param tags object
param appInsightsId string
@description('Address the alerts are mailed to. Empty: alerts show in the portal only.')
param alertEmail string

// Azure Monitor receives the app's histograms as sum and count per interval, so latency alerts
// read the mean over the window, as the workbook's panels do.
var alerts = [
  {
    name: 'first-audio'
    title: 'End of speech to first audio (mean, ms)'
    threshold: 1500
    query: '''
customMetrics
| where name == "voice_agent.turn.first_audio"
| summarize value = sum(valueSum) / sum(valueCount)
'''
  }
  {
    name: 'overhead'
    title: 'Our overhead per turn (mean, ms)'
    threshold: 250
    query: '''
customMetrics
| where name == "voice_agent.turn.stage.duration" and tostring(customDimensions["stage"]) == "overhead"
| summarize value = sum(valueSum) / sum(valueCount)
'''
  }
  {
    name: 'failovers'
    title: 'Provider failovers per second'
    threshold: json('0.1')
    query: '''
customMetrics
| where name == "voice_agent.provider.failovers"
| summarize value = sum(valueSum) / 300.0
'''
  }
  {
    name: 'errors'
    title: 'Errors per second'
    threshold: 1
    query: '''
customMetrics
| where name == "voice_agent.errors"
| summarize value = sum(valueSum) / 300.0
'''
  }
  // Below: alerts with no panel of their own (dashboards/README.md, "Alerts without a panel").
  {
    name: 'failed-conversations'
    title: 'Conversations that ended failed (in 5 minutes)'
    threshold: 5
    query: '''
customMetrics
| where name == "voice_agent.conversations.ended" and tostring(customDimensions["outcome"]) == "failed"
| summarize value = sum(valueSum)
'''
  }
  {
    // The Durable extension's tracking events (host.json keeps Host.Triggers.DurableTask at Information):
    // activities scheduled and not started within the window are work waiting for a worker.
    name: 'durable-backlog'
    title: 'Durable activities waiting to start (in 5 minutes)'
    threshold: 50
    query: '''
traces
| where tostring(customDimensions["Category"]) == "Host.Triggers.DurableTask"
| where tostring(customDimensions["prop__functionType"]) == "Activity"
| where tostring(customDimensions["prop__isReplay"]) != "True"
| extend state = tostring(customDimensions["prop__state"])
| summarize value = countif(state == "Scheduled") - countif(state == "Started")
'''
  }
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-voice-agent'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'voiceagent'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource rules 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for alert in alerts: {
  name: 'alert-${alert.name}'
  location: location
  tags: tags
  properties: {
    displayName: alert.title
    severity: 2
    enabled: true
    scopes: [ appInsightsId ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: alert.query
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'value'
          operator: 'GreaterThan'
          threshold: alert.threshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: empty(alertEmail) ? [] : [ actionGroup!.id ]
    }
  }
}]

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(appInsightsId, 'voice-agent-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Voice Agent Orchestrator'
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: loadTextContent('../../dashboards/azure-workbook.json')
  }
}
